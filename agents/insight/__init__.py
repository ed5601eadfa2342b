"""What the memory holds: traces of the recurrent state and its gates (``traces.py``),
probes of which units track the task's hidden variables (``probes.py``), plots
(``plots.py``) and the one-page run report (``report.py``). See docs/memory.md.
"""
