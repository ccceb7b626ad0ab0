"""ImageNet image sources shared by the ImageNet-based benchmark plugins: validation images (positives)
and training images (what SpuFix is fitted on), from local folders or the gated Hub dataset."""
