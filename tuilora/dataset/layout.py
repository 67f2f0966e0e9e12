"""Find the ``<repeats>_<name>`` folders and their files, as sd-scripts would.

sd-scripts (``config_util.generate_dreambooth_subsets_config_by_subdirs``) looks one level
down: every subfolder whose name splits on ``_`` into an integer ``N >= 1`` and the rest
(the class token) is a subset with N repeats; any other folder is skipped with a log line
that is easy to miss ("ignore directory without repeats"). In a subset it globs ``*.png``,
``*.PNG``, ... (``train_util.glob_images``: case-sensitive, no hidden files, no recursion).
This module lists exactly those files, never recurses, and so cannot loop on symbolic
links; everything it skips that the user probably meant to train becomes a problem.

``Layout.folders`` are the folders sd-scripts trains, and the only ones anything counts or
trains (the engine reads them too). A misnamed folder that holds images goes to
``Layout.skipped``: its files are still audited, as its suggested rename would train them,
so one check names every problem, but none of its images is counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tuilora.dataset.images import IMAGE_EXTENSIONS, OTHER_IMAGE_EXTENSIONS
from tuilora.dataset.problems import Problem, display_path, is_valid_utf8_name, problem


@dataclass(slots=True)
class Folder:
    """One subset folder and the names of the files in it that matter."""

    name: str
    path: str
    display: str
    repeats: int
    class_tokens: str
    is_reg: bool
    images: list[str] = field(default_factory=list)
    captions: set[str] = field(default_factory=set)
    # names sd-scripts' glob takes for images that are no files (folders, broken links)
    not_files: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Layout:
    folders: list[Folder] = field(default_factory=list)
    skipped: list[Folder] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_folder_name(name: str) -> tuple[int, str] | None:
    """``(repeats, class_tokens)`` for a folder sd-scripts trains, else None.

    Uses ``int()`` on the part before the first ``_`` exactly as sd-scripts does, so
    ``10_aria`` is (10, "aria"), ``10`` is (10, ""), and ``aria`` or ``0_aria`` is None.
    """
    head, _, rest = name.partition("_")
    try:
        repeats = int(head)
    except ValueError:
        return None
    return (repeats, rest) if repeats >= 1 else None


def _suggested_name(name: str) -> str:
    """A valid name keeping the user's words: 1 repeat, as G-START-EPOCHS advises."""
    head, sep, rest = name.partition("_")
    try:
        int(head)
    except ValueError:
        return f"1_{name}"
    return f"1_{rest}" if sep and rest else "1_images"


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``entry.is_dir()``, False where the check itself fails (a symlink loop raises
    ELOOP, a vanished target or a denied stat raise OSError)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _scan_entries(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _is_image_name(name: str) -> bool:
    ext = os.path.splitext(name)[1]
    return ext in IMAGE_EXTENSIONS or ext.lower() in IMAGE_EXTENSIONS


def _count_images(path: str) -> int:
    try:
        return sum(1 for entry in _scan_entries(path) if _is_image_name(entry.name))
    except OSError:
        return 0


def _join(display_root: str, *parts: str) -> str:
    return display_path(os.path.join(display_root, *parts))


def discover(root: str, *, is_reg: bool, caption_extension: str) -> Layout:
    """List the subset folders under ``root`` (train or regularization directory)."""
    layout = Layout()
    try:
        entries = _scan_entries(root)
    except OSError as exc:
        layout.problems.append(_unreadable_folder(root, exc))
        return layout
    loose_images: list[str] = []
    seen_real: dict[str, str] = {}
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue  # hidden files and folders: sd-scripts' glob never sees them
        if _is_dir(entry):
            parsed = parse_folder_name(name)
            if parsed is None:
                if _check_skipped_folder(layout, root, name):
                    # Audit its files too, as the suggested rename (1_<name>) would train
                    # them, so one check names every problem instead of one per rename;
                    # sd-scripts skips the folder, so nothing in it is counted.
                    repeats, tokens = parse_folder_name(_suggested_name(name)) or (1, name)
                    folder = Folder(
                        name, entry.path, _join(root, name), repeats, display_path(tokens), is_reg
                    )
                    if _fill_folder(layout, folder, caption_extension):
                        layout.skipped.append(folder)
                continue
            real = os.path.realpath(entry.path)
            if real in seen_real:
                layout.problems.append(_duplicate_folder(root, name, seen_real[real]))
                continue
            seen_real[real] = name
            # the class token becomes a caption: bytes that are not UTF-8 turn into U+FFFD
            # here, so no message, report or tokenizer ever meets a lone surrogate
            repeats, tokens = parsed
            folder = Folder(
                name, entry.path, _join(root, name), repeats, display_path(tokens), is_reg
            )
            if _fill_folder(layout, folder, caption_extension):
                layout.folders.append(folder)
        elif _is_file(entry):
            if _is_image_name(name):
                loose_images.append(name)
        elif _is_link(entry):
            layout.problems.append(_broken_link(_join(root, name)))
    if loose_images:
        has_folders = bool(layout.folders or layout.skipped)
        layout.problems.append(_loose_images(root, loose_images, has_folders=has_folders))
    return layout


def _fill_folder(layout: Layout, folder: Folder, caption_extension: str) -> bool:
    """List the folder's files into ``folder``; False when it cannot be listed."""
    try:
        entries = _scan_entries(folder.path)
    except OSError as exc:
        layout.problems.append(_unreadable_folder(folder.display, exc))
        return False
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        ext = os.path.splitext(name)[1]
        if ext in IMAGE_EXTENSIONS and _is_file(entry):
            folder.images.append(name)  # the common case first, without building paths
            if is_valid_utf8_name(name):
                continue
        elif name.endswith(caption_extension) and _is_file(entry):
            folder.captions.add(name)
            if is_valid_utf8_name(name):
                continue
        shown = _join(folder.display, name)
        if not is_valid_utf8_name(name):
            layout.problems.append(
                problem(
                    "bad-filename",
                    shown,
                    f"{shown}: the name is not valid UTF-8 (shown with U+FFFD)",
                    "rename it using UTF-8 (e.g. `convmv -f latin1 -t utf-8 --notest`)",
                )
            )
        if ext in IMAGE_EXTENSIONS and not _is_file(entry):
            # sd-scripts' glob matches any name, so it would take this for an image and
            # stop when it opens it; nothing here can be trained, so it is not counted.
            layout.problems.append(_not_an_image_file(shown, entry))
            folder.not_files.append(name)
            continue
        if _is_dir(entry):
            layout.problems.append(
                problem(
                    "nested-folder",
                    shown,
                    f"{shown} is a subfolder; sd-scripts does not look inside it",
                    f"move its images up into {folder.display} or into their own "
                    "<repeats>_<name> folder next to it",
                )
            )
            continue
        if not _is_file(entry):
            if _is_link(entry):
                layout.problems.append(_broken_link(shown))
            continue
        if ext in IMAGE_EXTENSIONS or name.endswith(caption_extension):
            continue  # already listed above
        if ext.lower() in IMAGE_EXTENSIONS or ext.lower() in OTHER_IMAGE_EXTENSIONS:
            layout.problems.append(_ignored_extension(shown, name))
    return True


def _check_skipped_folder(layout: Layout, root: str, name: str) -> bool:
    """Report a misnamed folder that holds images; True when it was reported."""
    path = os.path.join(root, name)
    count = _count_images(path)
    if count == 0:
        return False  # an unrelated folder (logs, backups): sd-scripts skips it, so do we
    shown = _join(root, name)
    target = _join(root, _suggested_name(name))
    layout.problems.append(
        problem(
            "bad-folder-name",
            shown,
            f"{shown}: sd-scripts skips this folder and its {count} image(s), which are not "
            "counted: the name must be <repeats>_<name> with repeats >= 1",
            f"rename it: mv '{shown}' '{target}' (1 repeat and more epochs is the guide's advice)",
            ("G-START-EPOCHS",),
        )
    )
    return True


def _loose_images(root: str, names: list[str], *, has_folders: bool) -> Problem:
    shown = display_path(root)
    base = os.path.basename(os.path.normpath(root))
    parsed = parse_folder_name(base)
    example = display_path(names[0])
    if parsed is not None and not has_folders:
        parent = display_path(os.path.dirname(os.path.abspath(root)))
        fix = (
            f"{shown} is itself a <repeats>_<name> folder: pass its parent instead "
            f"(tuilora dataset check '{parent}')"
        )
    else:
        target = _join(
            root, "1_" + (base if base and parse_folder_name(base) is None else "images")
        )
        fix = f"move them into a subfolder such as '{target}' (sd-scripts reads only subfolders)"
    return problem(
        "images-in-root",
        shown,
        f"{shown}: {len(names)} image(s) (e.g. {example}) lie directly in the dataset folder, "
        "which sd-scripts does not read",
        fix,
        ("G-START-EPOCHS",),
    )


def _unreadable_folder(shown: str, exc: OSError) -> Problem:
    shown = display_path(shown)
    reason = exc.strerror or type(exc).__name__
    return problem(
        "unreadable-folder",
        shown,
        f"{shown} cannot be listed: {reason}",
        f"fix its permissions (e.g. chmod u+rx '{shown}') or remove it",
    )


def _duplicate_folder(root: str, name: str, first: str) -> Problem:
    shown = _join(root, name)
    return problem(
        "duplicate-folder",
        shown,
        f"{shown} is the same folder as {_join(root, first)} (a link); sd-scripts trains it twice",
        "remove the link, or raise the first folder's repeats if the double weight was meant",
    )


def _not_an_image_file(shown: str, entry: os.DirEntry[str]) -> Problem:
    if _is_dir(entry):
        what = "a folder, not an image file"
        fix = f"rename it so that its name does not end in {os.path.splitext(shown)[1]}"
    elif _is_link(entry):
        what = "a symbolic link that loops or points nowhere"
        fix = f"remove it (rm '{shown}') or point it at a real image"
    else:
        what, fix = "not a regular file (a device or a pipe)", f"remove it (rm '{shown}')"
    return problem(
        "unreadable-image",
        shown,
        f"{shown} cannot be read: it is {what}; sd-scripts takes it for an image and "
        "stops, tuilora train skips it; not counted",
        fix,
    )


def _broken_link(shown: str) -> Problem:
    return problem(
        "broken-link",
        shown,
        f"{shown} is a symbolic link to nothing (or a loop)",
        f"remove it (rm '{shown}') or point it at a real file",
    )


def _ignored_extension(shown: str, name: str) -> Problem:
    stem, ext = os.path.splitext(name)
    if ext.lower() in IMAGE_EXTENSIONS:
        fix = f"rename it to {display_path(stem + ext.lower())}"
    else:
        fix = "convert it to PNG or JPEG (e.g. `convert in.gif out.png`)"
    return problem(
        "ignored-extension",
        shown,
        f"{shown}: sd-scripts only reads .png .jpg .jpeg .webp .bmp (all lower or all upper "
        "case) and skips this file",
        fix,
    )
