"""Checkpoint files: written whole or not at all, and a full disk is one clear error."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hgq_rtl.train import checkpoint


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "training" / "checkpoint.pt"
    checkpoint.save({"epoch": 1}, target)
    before = target.read_bytes()

    def full(file) -> None:
        file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="cannot write .*checkpoint.pt: No space left") as caught:
        checkpoint.atomic_write(target, full)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == before  # the old checkpoint stays
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint.pt"]
