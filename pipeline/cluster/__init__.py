"""Running jobs on a Ray cluster: submission through Ray Jobs (``submit.py``)."""
