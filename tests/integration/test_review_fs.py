"""Defects found in a review of fs/ (each test failed before its fix)."""
import os

V = "Demo Vector"


def test_scratch_user_xattr_kept_byte_for_byte(mount):
    # rsync -X / cp -a keep user.* xattrs of their temp (scratch) files: a
    # value is binary data, neither cut at 1023 bytes nor stripped of a
    # trailing newline (only the status name is)
    m = mount(V)
    p = m.p("tmp-xattr.bin")
    with open(p, "wb") as f:
        f.write(b"x")
    big = bytes(range(256)) * 16  # 4096 bytes
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    nl = b"line one\nline two\n"
    os.setxattr(p, "user.nl", nl)
    assert os.getxattr(p, "user.nl") == nl
    os.unlink(p)
