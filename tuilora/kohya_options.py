"""Every option of sd-scripts' ``train_network.py`` / ``sdxl_train_network.py``, and what
tuilora does with it.

Read off the two parsers of kohya-ss/sd-scripts (commit 48d368fa, 2026) with their argument
kinds and defaults. Each option is one of:

- ``implemented``: a ``TrainingConfig`` field with sd-scripts' meaning; ``test`` names the
  test that states sd-scripts' behaviour;
- ``refused``: given with a value other than sd-scripts' default, training stops before it
  starts (exit 2) with one line naming the option and ``note`` (what to do instead);
- ``notice``: it cannot change the trained file (logging, hub upload, console, speed):
  accepted, and a value other than the default is reported once with ``note``.

A key sd-scripts does not define is an error with a did-you-mean. ``docs/sd-scripts-options.md``
is generated from this table (``python -m tuilora.kohya_options``) and a test keeps the two
equal. The kinds are sd-scripts' argument types: ``flag`` (store_true: a TOML boolean, a bare
``--flag`` on the command line), ``int``, ``float``, ``int_or_float``, ``str``, ``strs`` /
``floats`` (nargs="*" lists).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final, Literal

Status = Literal["implemented", "refused", "notice"]


@dataclass(frozen=True)
class KohyaOption:
    kind: str
    status: Status
    #: refused: what to do instead; notice: what tuilora does instead; implemented: a remark.
    note: str = ""
    #: sd-scripts' default: a value equal to it asks for nothing.
    default: object = None
    #: implemented: ``tests/...py::test_name`` stating sd-scripts' behaviour.
    test: str = ""


CAP = "tests/engine/test_parity_captions.py::"
DATA = "tests/engine/test_parity_data.py::"
LOSS = "tests/engine/test_parity_loss.py::"
NET = "tests/engine/test_parity_network.py::"
OPT = "tests/engine/test_parity_optim.py::"
RUN = "tests/engine/test_parity_run.py::"
RESUME = "tests/engine/test_parity_resume.py::"
TRAIN = "tests/engine/test_engine_train.py::"
CONF = "tests/test_config.py::"
SDXL = "tests/engine/test_engine_sdxl.py::"
SAMPLE = "tests/engine/test_engine_sample_train.py::"
LYCORIS = "tests/engine/test_engine_lycoris.py::"
SINGLE = "tests/engine/test_engine_single_file.py::"
OPTIONS_TEST = "tests/test_kohya_options.py::"


def _impl(kind: str, test: str, default: object = None, note: str = "") -> KohyaOption:
    return KohyaOption(kind, "implemented", note, default, test)


def _refuse(kind: str, note: str, default: object = None) -> KohyaOption:
    return KohyaOption(kind, "refused", note, default)


def _notice(kind: str, note: str, default: object = None) -> KohyaOption:
    return KohyaOption(kind, "notice", note, default)


NO_HUB = "tuilora never reaches a hub; upload the files yourself"
LOGGING = "tuilora logs to events.jsonl, train.log and RUN/tb (TensorBoard)"
SPEED = "only changes speed or memory, not the trained file; tuilora uses PyTorch SDPA"
DEEPSPEED = (
    "DeepSpeed is not supported: use gradient_checkpointing, cache_latents and AdamW8bit"
    " or AdaFactor to save memory"
)
RESUME_INSTEAD = "continue a tuilora run with: tuilora train --resume RUN"

OPTIONS: Final[dict[str, KohyaOption]] = {
    # -- console and logging --------------------------------------------------------------
    "console_log_level": _notice("str", LOGGING),
    "console_log_file": _notice("str", LOGGING),
    "console_log_simple": _notice("flag", LOGGING, False),
    # -- model -------------------------------------------------------------------------------
    "v2": _impl("flag", RUN + "test_v2_is_checked_against_the_model", False),
    "v_parameterization": _impl(
        "flag", TRAIN + "test_v_prediction_is_read_from_the_scheduler", False
    ),
    "pretrained_model_name_or_path": _impl(
        "str", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"
    ),
    "tokenizer_cache_dir": _notice("str", "tokenizers are read from the model, never downloaded"),
    "vae": _impl("str", RUN + "test_model_hashes_are_sd_scripts_hashes"),
    "no_half_vae": _impl(
        "flag", SDXL + "test_tiny_sdxl_trains_and_diffusers_injects_every_module", False
    ),
    "disable_mmap_load_safetensors": _notice("flag", SPEED, False),
    "lowram": _notice("flag", SPEED, False),
    "highvram": _notice("flag", SPEED, False),
    "fp8_base": _refuse(
        "flag", "fp8 base weights are not supported: use mixed_precision bf16 or fp16", False
    ),
    "fp8_base_unet": _refuse(
        "flag", "fp8 base weights are not supported: use mixed_precision bf16 or fp16", False
    ),
    "mem_eff_attn": _notice("flag", SPEED, False),
    "xformers": _notice("flag", SPEED, False),
    "sdpa": _notice("flag", SPEED, False),
    "torch_compile": _notice("flag", SPEED, False),
    "dynamo_backend": _notice("str", SPEED, "inductor"),
    # -- model-spec metadata ---------------------------------------------------------------
    "metadata_title": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_author": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_description": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_license": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_tags": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_usage_hint": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_thumbnail": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_merged_from": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_trigger_phrase": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_preprocessor": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "metadata_is_negative_embedding": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    "no_metadata": _impl("flag", RUN + "test_modelspec_options_and_no_metadata", False),
    "training_comment": _impl("str", RUN + "test_modelspec_options_and_no_metadata"),
    # -- dataset -----------------------------------------------------------------------------
    "train_data_dir": _impl("str", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"),
    "reg_data_dir": _impl("str", DATA + "test_regularization_images_fill_up_to_the_training_count"),
    "in_json": _refuse(
        "str",
        "metadata (in_json) datasets are not supported: use DIR/<repeats>_<name>/ folders",
    ),
    "dataset_config": _refuse(
        "str",
        "dataset config files are not supported: use train_data_dir (DIR/<repeats>_<name>/)",
    ),
    "dataset_class": _refuse("str", "custom dataset classes are not supported: use train_data_dir"),
    "dataset_repeats": _notice(
        "int",
        "applies to in_json datasets only (as in sd-scripts); repeats come from the folder names",
        1,
    ),
    "debug_dataset": _refuse(
        "flag",
        "debug_dataset only shows the dataset and trains nothing: run tuilora dataset check DIR",
        False,
    ),
    "cache_info": _notice("flag", "tuilora's dataset scan needs no info cache", False),
    "caption_extension": _impl(
        "str", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", ".caption"
    ),
    "caption_extention": _impl("str", DATA + "test_caption_extention_is_the_old_spelling"),
    "shuffle_caption": _impl(
        "flag", CAP + "test_tag_dropout_and_shuffle_keep_the_fixed_tags", False
    ),
    "caption_separator": _impl("str", CAP + "test_caption_separator_and_secondary_separator", ","),
    "keep_tokens": _impl("int", CAP + "test_tag_dropout_and_shuffle_keep_the_fixed_tags", 0),
    "keep_tokens_separator": _impl(
        "str", CAP + "test_keep_tokens_separator_fixes_the_head_and_the_tail", ""
    ),
    "secondary_separator": _impl("str", CAP + "test_caption_separator_and_secondary_separator"),
    "enable_wildcard": _impl("flag", CAP + "test_wildcards_and_multiline_captions", False),
    "caption_prefix": _impl("str", CAP + "test_caption_prefix_and_suffix_wrap_the_caption"),
    "caption_suffix": _impl("str", CAP + "test_caption_prefix_and_suffix_wrap_the_caption"),
    "token_warmup_min": _impl("int", CAP + "test_token_warmup_grows_the_caption_with_the_step", 1),
    "token_warmup_step": _impl(
        "float", CAP + "test_token_warmup_grows_the_caption_with_the_step", 0
    ),
    "weighted_captions": _refuse(
        "flag",
        "weighted captions are not supported: remove the (word:1.2) weights from the captions",
        False,
    ),
    "caption_dropout_rate": _impl(
        "float", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", 0.0
    ),
    "caption_dropout_every_n_epochs": _impl(
        "int", CAP + "test_caption_dropout_every_n_epochs_counts_epochs_from_1", 0
    ),
    "caption_tag_dropout_rate": _impl(
        "float", CAP + "test_tag_dropout_and_shuffle_keep_the_fixed_tags", 0.0
    ),
    "color_aug": _impl(
        "flag", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", False
    ),
    "flip_aug": _impl(
        "flag", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", False
    ),
    "random_crop": _impl(
        "flag", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", False
    ),
    "face_crop_aug_range": _impl(
        "str", DATA + "test_face_crop_aug_range_keeps_the_face_in_the_crop"
    ),
    "alpha_mask": _refuse(
        "flag",
        "alpha-channel loss masks are not supported: remove alpha_mask (alpha is dropped)",
        False,
    ),
    "masked_loss": _refuse("flag", "masked loss is not supported: remove masked_loss", False),
    "conditioning_data_dir": _refuse(
        "str", "conditioning images (masked loss) are not supported: remove conditioning_data_dir"
    ),
    "resolution": _impl(
        "str", DATA + "test_non_square_resolution_without_buckets_trains_at_that_size"
    ),
    "enable_bucket": _impl(
        "flag", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", False
    ),
    "min_bucket_reso": _impl(
        "int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", 256
    ),
    "max_bucket_reso": _impl(
        "int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", 1024
    ),
    "bucket_reso_steps": _impl(
        "int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", 64
    ),
    "bucket_no_upscale": _impl("flag", DATA + "test_bucket_no_upscale_never_enlarges", False),
    "resize_interpolation": _impl(
        "str", DATA + "test_resize_interpolation_follows_sd_scripts_defaults"
    ),
    "cache_latents": _impl(
        "flag", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", False
    ),
    "cache_latents_to_disk": _impl(
        "flag", DATA + "test_cache_latents_to_disk_turns_caching_on", False
    ),
    "vae_batch_size": _notice(
        "int", "only changes speed: the VAE encodes each image on its own", 1
    ),
    "skip_cache_check": _notice(
        "flag",
        "tuilora's latent cache is keyed by image content, size, bucket and VAE, and checked",
        False,
    ),
    "max_data_loader_n_workers": _notice("int", SPEED, 8),
    "persistent_data_loader_workers": _notice("flag", SPEED, False),
    # -- output and saving -----------------------------------------------------------------
    "output_dir": _impl("str", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"),
    "output_name": _impl("str", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"),
    "save_precision": _impl("str", RUN + "test_alpha_is_saved_in_the_save_dtype"),
    "save_model_as": _impl("str", CONF + "test_bad_values_name_the_key", note="safetensors only"),
    "save_every_n_epochs": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts"),
    "save_every_n_steps": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts"),
    "save_n_epoch_ratio": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts"),
    "save_last_n_epochs": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts"),
    "save_last_n_steps": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts"),
    "save_last_n_epochs_state": _notice("int", "tuilora keeps the newest complete training state"),
    "save_last_n_steps_state": _notice("int", "tuilora keeps the newest complete training state"),
    "save_state": _impl("flag", TRAIN + "test_resume_continues_exactly", False),
    "save_state_on_train_end": _impl(
        "flag", RUN + "test_snapshots_and_retention_follow_sd_scripts", False
    ),
    "resume": _refuse(
        "str", "sd-scripts' accelerate state folders cannot be read: " + RESUME_INSTEAD
    ),
    "huggingface_repo_id": _notice("str", NO_HUB),
    "huggingface_repo_type": _notice("str", NO_HUB),
    "huggingface_path_in_repo": _notice("str", NO_HUB),
    "huggingface_token": _notice("str", NO_HUB),
    "huggingface_repo_visibility": _notice("str", NO_HUB),
    "save_state_to_huggingface": _notice("flag", NO_HUB, False),
    "resume_from_huggingface": _refuse(
        "flag", "tuilora never reaches a hub: " + RESUME_INSTEAD, False
    ),
    "async_upload": _notice("flag", NO_HUB, False),
    # -- training ----------------------------------------------------------------------------
    "train_batch_size": _impl("int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", 1),
    "max_token_length": _impl("int", SDXL + "test_padded_tokenizer_chunks_end_with_eos"),
    "max_train_steps": _impl("int", RUN + "test_snapshots_and_retention_follow_sd_scripts", 1600),
    "max_train_epochs": _impl("int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"),
    "seed": _impl("int", RUN + "test_an_unset_seed_is_random_and_recorded"),
    "gradient_checkpointing": _impl(
        "flag", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", False
    ),
    "gradient_accumulation_steps": _impl(
        "int", "tests/engine/test_engine_cli.py::test_two_processes_train_one_valid_lora", 1
    ),
    "mixed_precision": _impl(
        "str", SDXL + "test_tiny_sdxl_trains_and_diffusers_injects_every_module", "no"
    ),
    "full_fp16": _impl("flag", RUN + "test_full_bf16_trains_the_network_in_bf16", False),
    "full_bf16": _impl("flag", RUN + "test_full_bf16_trains_the_network_in_bf16", False),
    "fp16_master_weights_and_gradients": _refuse("flag", DEEPSPEED, False),
    "ddp_timeout": _notice(
        "int", "several processes use tuilora's own all-reduce (docs/engine.md)"
    ),
    "ddp_gradient_as_bucket_view": _notice(
        "flag", "several processes use tuilora's own all-reduce (docs/engine.md)", False
    ),
    "ddp_static_graph": _notice(
        "flag", "several processes use tuilora's own all-reduce (docs/engine.md)", False
    ),
    "deepspeed": _refuse("flag", DEEPSPEED, False),
    "zero_stage": _refuse("int", DEEPSPEED, 2),
    "offload_optimizer_device": _refuse("str", DEEPSPEED),
    "offload_optimizer_nvme_path": _refuse("str", DEEPSPEED),
    "offload_param_device": _refuse("str", DEEPSPEED),
    "offload_param_nvme_path": _refuse("str", DEEPSPEED),
    "zero3_init_flag": _refuse("flag", DEEPSPEED, False),
    "zero3_save_16bit_model": _refuse("flag", DEEPSPEED, False),
    "cpu_offload_checkpointing": _notice("flag", SPEED, False),
    "clip_skip": _impl("int", SDXL + "test_sdxl_text_encoding_matches_diffusers_pipeline"),
    "prior_loss_weight": _impl(
        "float", DATA + "test_regularization_images_fill_up_to_the_training_count", 1.0
    ),
    "skip_until_initial_step": _refuse("flag", RESUME_INSTEAD, False),
    "initial_epoch": _refuse("int", RESUME_INSTEAD),
    "initial_step": _refuse("int", RESUME_INSTEAD),
    "cache_text_encoder_outputs": _impl(
        "flag", SDXL + "test_cached_text_encoder_outputs_encode_each_caption_once", False
    ),
    "cache_text_encoder_outputs_to_disk": _impl(
        "flag",
        SDXL + "test_cached_text_encoder_outputs_encode_each_caption_once",
        False,
        note="cached in memory",
    ),
    # -- noise, timesteps and loss -----------------------------------------------------------
    "noise_offset": _impl("float", LOSS + "test_noise_offset_random_strength_and_adaptive_scale"),
    "noise_offset_random_strength": _impl(
        "flag", LOSS + "test_noise_offset_random_strength_and_adaptive_scale", False
    ),
    "adaptive_noise_scale": _impl(
        "float", LOSS + "test_noise_offset_random_strength_and_adaptive_scale"
    ),
    "multires_noise_iterations": _impl(
        "int", LOSS + "test_multires_noise_is_pyramid_noise_of_unit_std"
    ),
    "multires_noise_discount": _impl(
        "float", LOSS + "test_multires_noise_is_pyramid_noise_of_unit_std", 0.3
    ),
    "ip_noise_gamma": _impl("float", LOSS + "test_ip_noise_gamma_perturbs_only_the_noisy_input"),
    "ip_noise_gamma_random_strength": _impl(
        "flag", LOSS + "test_ip_noise_gamma_perturbs_only_the_noisy_input", False
    ),
    "zero_terminal_snr": _impl(
        "flag", LOSS + "test_zero_terminal_snr_rescales_betas_as_sd_scripts", False
    ),
    "min_timestep": _impl("int", LOSS + "test_timesteps_stay_within_min_and_max_timestep"),
    "max_timestep": _impl("int", LOSS + "test_timesteps_stay_within_min_and_max_timestep"),
    "loss_type": _impl("str", LOSS + "test_loss_types_follow_sd_scripts_formulas", "l2"),
    "huber_schedule": _impl("str", LOSS + "test_loss_types_follow_sd_scripts_formulas", "snr"),
    "huber_c": _impl("float", LOSS + "test_loss_types_follow_sd_scripts_formulas", 0.1),
    "huber_scale": _impl("float", LOSS + "test_loss_types_follow_sd_scripts_formulas", 1.0),
    "min_snr_gamma": _impl("float", TRAIN + "test_min_snr_weights_follow_both_formulas"),
    "scale_v_pred_loss_like_noise_pred": _impl(
        "flag", LOSS + "test_snr_weightings_follow_sd_scripts", False
    ),
    "v_pred_like_loss": _impl("float", LOSS + "test_snr_weightings_follow_sd_scripts"),
    "debiased_estimation_loss": _impl(
        "flag", LOSS + "test_snr_weightings_follow_sd_scripts", False
    ),
    # -- sampling ----------------------------------------------------------------------------
    "sample_every_n_steps": _impl(
        "int", SAMPLE + "test_samples_every_n_steps_without_an_epoch_interval"
    ),
    "sample_every_n_epochs": _impl(
        "int", SAMPLE + "test_samples_every_epoch_with_sd_scripts_names_and_events"
    ),
    "sample_prompts": _impl(
        "str", SAMPLE + "test_samples_every_epoch_with_sd_scripts_names_and_events"
    ),
    "sample_sampler": _impl(
        "str", SAMPLE + "test_samples_every_epoch_with_sd_scripts_names_and_events", "ddim"
    ),
    "sample_at_first": _notice(
        "flag",
        "samples do not change the trained file; tuilora samples after steps and epochs",
        False,
    ),
    # -- logging -----------------------------------------------------------------------------
    "logging_dir": _notice("str", LOGGING),
    "log_with": _notice("str", LOGGING),
    "log_prefix": _notice("str", LOGGING),
    "log_tracker_name": _notice("str", LOGGING),
    "wandb_run_name": _notice("str", LOGGING),
    "log_tracker_config": _notice("str", LOGGING),
    "wandb_api_key": _notice("str", LOGGING),
    "log_config": _notice("flag", "the resolved config is always saved as RUN/config.toml", False),
    "config_file": _notice("str", "the config file is the one given to tuilora train"),
    "output_config": _refuse(
        "flag",
        "output_config writes a config and trains nothing: tuilora saves RUN/config.toml itself",
        False,
    ),
    # -- optimizer and scheduler -------------------------------------------------------------
    "optimizer_type": _impl("str", OPT + "test_dadaptation_means_dadapt_adam_preprint", ""),
    "use_8bit_adam": _impl(
        "flag", OPT + "test_use_8bit_adam_and_use_lion_optimizer_choose_the_optimizer", False
    ),
    "use_lion_optimizer": _impl(
        "flag", OPT + "test_use_8bit_adam_and_use_lion_optimizer_choose_the_optimizer", False
    ),
    "optimizer_args": _impl("strs", TRAIN + "test_resume_continues_exactly"),
    "learning_rate": _impl("float", TRAIN + "test_events_writer_is_used_by_trainer", 2e-6),
    "max_grad_norm": _impl(
        "float", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation", 1.0
    ),
    "fused_backward_pass": _notice(
        "flag", "train_network.py only checks it (the fused pass is for full fine-tuning)", False
    ),
    "lr_scheduler": _impl(
        "str", OPT + "test_every_scheduler_name_builds_or_is_refused", "constant"
    ),
    "lr_scheduler_type": _impl("str", OPT + "test_lr_scheduler_type_names_a_torch_scheduler", ""),
    "lr_scheduler_args": _impl("strs", OPT + "test_lr_scheduler_args_reach_the_scheduler"),
    "lr_warmup_steps": _impl("int_or_float", OPT + "test_warmup_and_decay_fractions_round_down", 0),
    "lr_decay_steps": _impl("int_or_float", OPT + "test_warmup_and_decay_fractions_round_down", 0),
    "lr_scheduler_num_cycles": _impl(
        "int", OPT + "test_every_scheduler_name_builds_or_is_refused", 1
    ),
    "lr_scheduler_power": _impl("float", OPT + "test_every_scheduler_name_builds_or_is_refused", 1),
    "lr_scheduler_timescale": _impl("int", OPT + "test_every_scheduler_name_builds_or_is_refused"),
    "lr_scheduler_min_lr_ratio": _impl(
        "float", OPT + "test_every_scheduler_name_builds_or_is_refused"
    ),
    "unet_lr": _impl("float", TRAIN + "test_events_writer_is_used_by_trainer"),
    "text_encoder_lr": _impl("floats", CONF + "test_sd_scripts_toml_is_accepted_with_its_quirks"),
    # -- network -----------------------------------------------------------------------------
    "network_module": _impl("str", LYCORIS + "test_unknown_network_module_is_a_user_error"),
    "network_dim": _impl("int", TRAIN + "test_train_writes_sd_scripts_files_with_metadata"),
    "network_alpha": _impl("float", TRAIN + "test_train_writes_sd_scripts_files_with_metadata", 1),
    "network_dropout": _impl(
        "float", RESUME + "test_resume_is_exact_with_every_dropout_and_augmentation"
    ),
    "network_args": _impl("strs", NET + "test_unknown_network_args_are_refused"),
    "network_weights": _impl(
        "str", NET + "test_network_weights_continue_from_a_file_never_unpickled"
    ),
    "dim_from_weights": _impl(
        "flag", NET + "test_dim_from_weights_takes_ranks_and_alphas_from_the_file", False
    ),
    "network_train_unet_only": _impl(
        "flag", SDXL + "test_cached_text_encoder_outputs_encode_each_caption_once", False
    ),
    "network_train_text_encoder_only": _impl(
        "flag", NET + "test_text_encoder_only_trains_no_unet_module", False
    ),
    "scale_weight_norms": _impl(
        "float", "tests/engine/test_engine_network.py::test_max_norm_scales_only_large_modules"
    ),
    "base_weights": _impl("strs", NET + "test_base_weights_are_merged_before_training"),
    "base_weights_multiplier": _impl(
        "floats", NET + "test_base_weights_are_merged_before_training"
    ),
    # -- validation --------------------------------------------------------------------------
    "validation_split": _refuse(
        "float",
        "validation splits are not supported: set validation_split = 0 (all images train)",
        0.0,
    ),
    "validation_seed": _notice(
        "int", "used only with validation_split, which tuilora does not support"
    ),
    "validate_every_n_steps": _notice(
        "int", "used only with validation_split, which tuilora does not support"
    ),
    "validate_every_n_epochs": _notice(
        "int", "used only with validation_split, which tuilora does not support"
    ),
    "max_validation_steps": _notice(
        "int", "used only with validation_split, which tuilora does not support"
    ),
}

#: ``network_args`` keys sd-scripts' ``networks/lora.py`` reads; any other key is refused for
#: ``networks.lora`` (sd-scripts would ignore it silently). LyCORIS' keys go to LyCORIS.
LORA_NETWORK_ARGS: Final[dict[str, str]] = {
    "conv_dim": NET + "test_conv_dim_without_conv_alpha_means_alpha_1",
    "conv_alpha": NET + "test_conv_dim_without_conv_alpha_means_alpha_1",
    "rank_dropout": NET + "test_rank_and_module_dropout_only_while_training",
    "module_dropout": NET + "test_rank_and_module_dropout_only_while_training",
    "block_dims": NET + "test_block_dims_and_alphas_per_block",
    "block_alphas": NET + "test_block_dims_and_alphas_per_block",
    "conv_block_dims": NET + "test_block_dims_and_alphas_per_block",
    "conv_block_alphas": NET + "test_block_dims_and_alphas_per_block",
    "down_lr_weight": NET + "test_block_lr_weights_make_one_group_per_block",
    "mid_lr_weight": NET + "test_block_lr_weights_make_one_group_per_block",
    "up_lr_weight": NET + "test_block_lr_weights_make_one_group_per_block",
    "block_lr_zero_threshold": NET + "test_block_lr_weights_make_one_group_per_block",
    "loraplus_lr_ratio": NET + "test_loraplus_puts_lora_up_in_its_own_group",
    "loraplus_unet_lr_ratio": NET + "test_loraplus_puts_lora_up_in_its_own_group",
    "loraplus_text_encoder_lr_ratio": NET + "test_loraplus_puts_lora_up_in_its_own_group",
}

#: Options the config reader resolves into others, as sd-scripts does (config.resolve_aliases).
ALIASES: Final = frozenset(
    {
        "caption_extention",
        "use_8bit_adam",
        "use_lion_optimizer",
        "cache_text_encoder_outputs_to_disk",
    }
)

#: Option name -> sd-scripts argument kind (the exports and the TOML reader use this).
KOHYA_OPTIONS: Final[dict[str, str]] = {name: option.kind for name, option in OPTIONS.items()}

#: Options only ``sdxl_train_network.py`` defines.
SDXL_ONLY_OPTIONS: Final[frozenset[str]] = frozenset(
    {
        "cache_text_encoder_outputs",
        "cache_text_encoder_outputs_to_disk",
        "disable_mmap_load_safetensors",
    }
)

#: Options whose value sd-scripts restricts to a closed set.
KOHYA_CHOICES: Final[dict[str, tuple[object, ...]]] = {
    "resize_interpolation": (
        "lanczos",
        "nearest",
        "bilinear",
        "linear",
        "bicubic",
        "cubic",
        "area",
        "box",
    ),
    "save_precision": ("float", "fp16", "bf16"),
    "max_token_length": (150, 225),
    "mixed_precision": ("no", "fp16", "bf16"),
    "log_with": ("tensorboard", "wandb", "all"),
    "loss_type": ("l1", "l2", "huber", "smooth_l1"),
    "huber_schedule": ("constant", "exponential", "snr"),
    "sample_sampler": (
        "ddim",
        "pndm",
        "lms",
        "euler",
        "euler_a",
        "heun",
        "dpm_2",
        "dpm_2_a",
        "dpmsolver",
        "dpmsolver++",
        "dpmsingle",
        "k_lms",
        "k_euler",
        "k_euler_a",
        "k_dpm_2",
        "k_dpm_2_a",
    ),
    "zero_stage": (0, 1, 2, 3),
    "offload_optimizer_device": ("cpu", "nvme"),
    "offload_param_device": ("cpu", "nvme"),
    "save_model_as": ("ckpt", "pt", "safetensors"),
}


def asks_for_something(name: str, value: object) -> bool:
    """Whether ``value`` differs from sd-scripts' default (``False``/``None``/empty count as
    the default of a flag or an unset option)."""
    default = OPTIONS[name].default
    unset = value in (None, False, "", []) and default in (None, False, "")
    return not (value == default or unset)


def markdown() -> str:
    """``docs/sd-scripts-options.md``: one row per option."""
    counts = {status: 0 for status in ("implemented", "refused", "notice")}
    for option in OPTIONS.values():
        counts[option.status] += 1
    lines = [
        "# sd-scripts options in tuilora",
        "",
        "<!-- Generated by `python -m tuilora.kohya_options > docs/sd-scripts-options.md`;"
        " tests/test_kohya_options.py checks it. -->",
        "",
        "Every option of sd-scripts' `train_network.py` / `sdxl_train_network.py` (commit"
        " 48d368fa) and what `tuilora train` does with it. **implemented**: it means what it"
        " means in sd-scripts, and the test named states sd-scripts' behaviour. **refused**: set"
        " to anything but sd-scripts' default, training does not start (exit 2, one line naming"
        " the option and what to do instead). **notice**: it cannot change the trained file; set,"
        " it is reported once and otherwise ignored. A key sd-scripts does not define is an"
        " error with a did-you-mean.",
        "",
        f"{len(OPTIONS)} options: {counts['implemented']} implemented, {counts['refused']}"
        f" refused, {counts['notice']} notice-only.",
        "",
        "| option | status | what tuilora does / test |",
        "|---|---|---|",
    ]
    for name in sorted(OPTIONS):
        option = OPTIONS[name]
        detail = option.note
        if option.status == "implemented":
            detail = f"`{option.test}`" + (f" ({option.note})" if option.note else "")
        lines.append(f"| `{name}` | {option.status} | {detail} |")
    lines += [
        "",
        "## network_args of `networks.lora`",
        "",
        "sd-scripts' `networks/lora.py` reads these keys; tuilora implements each (any other key"
        " is refused for `networks.lora`, where sd-scripts would ignore it). `lycoris.kohya`"
        " takes LyCORIS' own keys unchanged.",
        "",
        "| network arg | test |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | `{test}` |" for name, test in sorted(LORA_NETWORK_ARGS.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
