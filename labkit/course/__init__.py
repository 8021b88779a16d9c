"""Course mode: graded exercises, the student edition and the autograder.

* :mod:`~labkit.course.selfcheck`: ``grader.check("q1")`` in the student edition, with or without otter.
* :mod:`~labkit.course.reference`: the hidden tests' random cases, references and forbidden calls.
* :mod:`~labkit.course.assign`: ``labkit assign`` (student edition + otter autograder).
* :mod:`~labkit.course.grade`: ``labkit grade`` (one sandboxed process per submission, otter run).
* :mod:`~labkit.course.guard`: the audit hook that keeps a submission inside its own folder.
* :mod:`~labkit.course.gradebook`: ``grades/grades.csv``, ``index.html`` and per-student pages.

Submodules are imported on use (``from labkit.course import selfcheck``); nothing happens at import.
"""
