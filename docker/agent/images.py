"""The images a run saved in the work dir (the figures of matplotlib's savefig among
them): found by comparing the work dir before and after the run."""

import os
import stat

from . import state

IMAGE_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "webp": "image/webp",
}


def image_mime(name):
    base, dot, ext = name.rpartition(".")
    if not dot:
        return None
    return IMAGE_MIME.get(ext.lower())


def snapshot_images():
    snapshot = {}
    try:
        with os.scandir(state.WORKDIR) as entries:
            for entry in entries:
                if image_mime(entry.name):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        snapshot[entry.name] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        pass
    return snapshot


def collect_images(before, budget):
    """Images the run created or changed, in name order, up to `budget` bytes in all."""
    after = snapshot_images()
    names = sorted(name for name, key in after.items() if before.get(name) != key)
    if names:
        import base64
    images = []
    total = 0
    truncated = False
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            continue
        try:
            fd = os.open(os.path.join(state.WORKDIR, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if total + st.st_size > budget:
                truncated = True
                break
            chunks = []
            remaining = st.st_size
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            data = b"".join(chunks)
        except OSError:
            continue
        finally:
            os.close(fd)
        total += len(data)
        images.append({"name": name, "mime": image_mime(name),
                       "data_base64": base64.b64encode(data).decode("ascii")})
    return images, truncated
