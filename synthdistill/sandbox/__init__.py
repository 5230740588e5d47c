"""A sandbox for short Python programs: a teacher's program of thought is run, never trusted.

runner.py starts one fresh interpreter a program (several side by side) and holds the limits a program
cannot reach: the wall clock, the output cap, its temporary folder. child.py is that interpreter's
script: resource limits, then the kernel's layers (confine.py: network namespace, Landlock, seccomp),
then an audit hook and an import allow-list, then the program. A program that hangs, raises, reaches
for what it may not or prints no answer gives a `Result` that says why; nothing raises into the caller.
"""

from synthdistill.sandbox.runner import DEFAULT_MODULES, Limits, Result, run_program, run_programs

__all__ = ["DEFAULT_MODULES", "Limits", "Result", "run_program", "run_programs"]
