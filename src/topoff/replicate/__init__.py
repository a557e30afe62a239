"""The source side of ``topoff replicate``: live tables read safely from a hot standby.

In progress: the ``topoff replicate`` command is not wired to the targets yet. See
docs/replicate.md for the design and what each module guarantees.
"""
