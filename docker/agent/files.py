"""The request's input files, written below the work dir before the run starts."""

import errno
import os
import stat

from . import state
from .protocol import InvalidArgs, write_all


def write_input_files(files):
    """Writes the request's files below the work dir; never follows a symlink."""
    for index, item in enumerate(files):
        if not isinstance(item, dict):
            raise InvalidArgs("files[%d] must be an object" % index)
        path = item.get("path")
        if not isinstance(path, str) or not path:
            raise InvalidArgs("files[%d] has no path" % index)
        content = item.get("content", "")
        if not isinstance(content, str):
            raise InvalidArgs("input file %r: content must be base64 text" % path)
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/") or "\0" in path or ".." in parts or not parts:
            raise InvalidArgs("input file %r: the path must be relative and stay inside the work dir" % path)
        import base64
        try:
            data = base64.b64decode(content, validate=True)
        except ValueError:
            raise InvalidArgs("input file %r: content is not valid base64" % path)
        _write_one(path, parts, data)


def _write_one(path, parts, data):
    dir_fd = os.open(state.WORKDIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise InvalidArgs("input file %r: cannot create directory %r: %s" % (path, part, e.strerror))
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dir_fd)
            except OSError as e:
                raise InvalidArgs("input file %r: %r is a symlink or not a directory (%s)"
                                  % (path, part, e.strerror))
            os.close(dir_fd)
            dir_fd = next_fd
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, 0o644, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidArgs("input file %r: the path is a symlink" % path)
            raise InvalidArgs("input file %r: %s" % (path, e.strerror))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidArgs("input file %r: the path exists and is not a regular file" % path)
            os.ftruncate(fd, 0)
            write_all(fd, data)
        except OSError as e:
            raise InvalidArgs("input file %r: %s" % (path, e.strerror))
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
