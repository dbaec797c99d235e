"""labkit.files.write_atomic: whole files or none, never over a file unless asked (even one that appears while
writing, with or without hard links), and errors that say what to do."""

import errno
import os
import stat

import pytest

from labkit.errors import BadInput
from labkit.files import FILE_MODE, save_text, write_atomic


def test_overwrite_replaces_and_gives_the_file_mode(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    write_atomic(path, lambda temp: temp.write_text("new"))
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_never_overwrite_keeps_a_file_that_appears_while_writing(tmp_path):
    path = tmp_path / "a.txt"

    def write(temp):
        temp.write_text("mine")
        path.write_text("someone else's")  # another process got there first

    with pytest.raises(BadInput, match="a.txt already exists"):
        write_atomic(path, write, overwrite=False)
    assert path.read_text() == "someone else's" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_never_overwrite_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    path = write_atomic(tmp_path / "a.txt", lambda temp: temp.write_text("first"), overwrite=False)
    assert path.read_text() == "first"
    with pytest.raises(BadInput, match="already exists"):
        write_atomic(path, lambda temp: temp.write_text("second"), overwrite=False)
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_full_disk_names_the_fix_and_leaves_nothing(tmp_path):
    def full(temp):
        temp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(BadInput, match="a.txt: No space left on device. The disk is full: free some space"):
        write_atomic(tmp_path / "a.txt", full)
    assert list(tmp_path.iterdir()) == []


def test_a_library_error_passes_through(tmp_path):
    def broken(temp):
        raise OSError("disk full")  # no error number: a library's own complaint, not the OS's

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "a.txt", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BadInput, match=f"Cannot write into the folder {blocker}.*Choose a folder"):
        save_text("x", blocker / "a.txt")
    assert save_text("x", tmp_path / "new" / "a.txt").read_text() == "x"  # missing folders are made
