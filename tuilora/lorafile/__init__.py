"""LoRA and checkpoint files read without torch: safetensors headers and tensors, sd-scripts'
module names, the LoRA modules in a file, and which checkpoint weight each module changes.

``tuilora tools inspect`` runs on this package alone (no torch, no safetensors package);
the engine's tools (extract, merge, resize) use it to read and write tensors lazily, one
at a time, so full-size checkpoints fit in a few GB of memory.
"""
