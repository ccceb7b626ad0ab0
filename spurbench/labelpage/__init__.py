"""The labelling page of a discovery folder (``spurbench label DIR``): a local web app where a person
marks each discovered component spurious, not spurious or inconsistent; the labels go to ``DIR/labels.json``
through ``spurbench.discovery.labels``."""
