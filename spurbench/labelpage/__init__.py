"""The label pages (``spurbench label DIR``), local web apps on 127.0.0.1: ``app`` where a person marks each
component of a discovery folder spurious, not spurious or inconsistent (the labels go to ``DIR/labels.jsonl``
through ``spurbench.discovery.labels``), ``verdict_pages`` where a person says whether the class's object is
absent from each candidate of a mining folder (``--mode verify``; the verdicts go to ``DIR/verify.jsonl``
through ``spurbench.mining.verdicts``)."""
