"""Finding spurious features: components of a class logit for any model, ready for people to label.

``pipeline`` runs ``discover`` (one backbone pass over the chosen classes' training images, then per
class its basis, statistics, top images, feature visualisations and GradCAMs); ``index`` is the
discovery folder's schema (``discovery.json`` and the saved bases); ``statistics``, ``images``,
``npfv``, ``gradcam`` and ``apgd`` are its steps; ``labels`` is the folder's ledger of people's labels.
"""
