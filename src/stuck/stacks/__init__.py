"""What a stack frame means (a lock wait, I/O, a sleep, an idle loop), for native frames
(``stacks.native``) and Python frames (``stacks.python``).

One place below both ``stuck.dumps`` and ``stuck.runtime``: a parser, the analysis and the live
watchdog ask the same tables, so a frame means the same thing whatever source showed it.
"""
