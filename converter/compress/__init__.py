"""sqz-compress: Deep Compression (Han et al.) for the device: magnitude pruning, weight sharing
with k-means codebooks, optional fine-tuning of the codebooks, and a report of the flash it buys.

The result is an ordinary float Keras model whose every conv kernel takes at most 2^bits values
(zero included) per tensor, or per output channel, with exact zeros where pruned. Beside it go:

* ``OUT.keras.compress.json``: what was done to each layer (density, bits, codebook kind,
  centroids). sqz-convert reads it: a per-tensor codebook must be quantized with one scale per
  tensor (TFLite's default, one scale per output channel, would give every channel its own int8
  table), and after quantization it checks that the structure survived.
* ``OUT.keras.preprocess.json`` / ``.classes.json``, carried over from the input model.
* ``OUT.report.md`` / ``OUT.report.json``: per layer the density, bits, weights kept and the
  bytes of the int8 filter on the device (converter.packing's smallest encoding), beside the
  paper's Table 1.

Choices that are not obvious:

* Sparsity means the fraction of weights set to zero; the report shows density (the fraction
  kept), which is what the paper's Table 1 calls "sparsity" (100% there means unpruned).
* The codebooks are snapped to the int8 grid TFLite will use (scale = max|w| / 127, symmetric),
  so the float model holds exactly the values the int8 model will hold; a kept weight never
  snaps to zero, so the density survives quantization exactly.
* k-means is one-dimensional Lloyd with the linear initialisation of Deep Compression (evenly
  spaced between the smallest and largest weight): no randomness, and the large weights, which
  matter most, keep centroids of their own.
* Fine-tuning follows Deep Compression's order: the kept weights are retrained with the
  pruning mask fixed, then shared by k-means, then the centroids are trained: each kernel is
  computed from its codebook inside the gradient tape, so dL/dc_k is the sum of dL/dw over the
  weights assigned to c_k, and the mask and the assignment stay fixed. Biases train normally.
"""
