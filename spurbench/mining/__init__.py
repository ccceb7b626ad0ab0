"""Mining a new spurious benchmark from an unlabelled pool (paper 1 sec. 6): ``spurbench mine``.

``pipeline`` ranks a pool by each labelled component's contribution (``mine``); ``sources`` gives the
classes' bases (a discovery or a SpuFix artifact); ``pool`` opens the pool; ``index`` is the mining
folder's schema (``candidates.json``); ``checks`` refuses bad inputs before the model loads;
``thumbnails`` writes the candidates' pictures; ``verdicts`` is the folder's ledger of people's verdicts
(``verdict_records``: the record and the ledger's kind).
"""
