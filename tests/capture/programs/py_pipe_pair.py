"""A Python parent and child deadlocked through two pipes, with no stuck in either: the parent
sends a large request on the child's stdin before reading any reply; the child answers each
chunk at once on its stdout, which nobody reads. Both pipes fill; both block in write."""

import subprocess
import sys

CHILD = """
import sys
while True:
    chunk = sys.stdin.buffer.read(4096)
    if not chunk:
        break
    sys.stdout.buffer.write(chunk * 4)
    sys.stdout.buffer.flush()
"""

child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
print(child.pid, flush=True)
child.stdin.write(b"x" * (16 << 20))  # blocks: the child is stuck writing its replies
child.stdin.close()
print(len(child.stdout.read()))
