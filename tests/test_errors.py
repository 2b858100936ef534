"""`errors.check_writable`: the probe a command runs before work it would lose (a read-only or full home is
tested end to end on a real tmpfs in tests/api/test_home_faults.py)."""
import errno

import pytest

from csforecast.errors import StorageError, check_writable, exit_code, storage_error


def test_a_writable_folder_passes_and_keeps_nothing_of_the_probe(tmp_path):
    folder = tmp_path / "new" / "home"          # created with its parents, as a first command's home is
    check_writable(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_a_storage_error_naming_it(tmp_path):
    blocker = tmp_path / "home"
    blocker.write_text("a file where the home folder should be")
    with pytest.raises(StorageError, match=f"cannot write {blocker / 'state'}") as e:
        check_writable(blocker / "state")
    assert exit_code(e.value) == 1


def test_a_disk_fault_names_its_cause():
    fault = storage_error(OSError(errno.ENOSPC, "No space left on device", "/x/y"), "/x")
    assert isinstance(fault, StorageError) and str(fault).startswith("cannot write /x/y: no space left on the device")
    assert storage_error(ValueError("a bad value"), "/x") is None


def test_a_fault_names_the_folder_not_the_probe_file(tmp_path, monkeypatch):
    # the OSError of a read-only file system names the probe file; the fault is the folder's (the kernel's own
    # read-only mount is tested end to end in tests/api/test_home_faults.py, where the machine allows a mount)
    import tempfile

    def read_only(prefix, dir):
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}abc123")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(StorageError) as e:
        check_writable(tmp_path)
    assert str(e.value) == f"cannot write {tmp_path}: read-only file system (Read-only file system)"
