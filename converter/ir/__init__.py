"""The two intermediate representations, both typed (frozen dataclasses):

- `graph`: the .tflite model as read (converter.frontend.tflite_reader): tensors with their
  quantization, and one dataclass per op, dispatched on by type;
- `steps`: the lowered schedule (converter.ir.lower): one step per kernel call, with every
  integer the C kernel needs (TFLite's Prepare, done ahead of time).

`quantmath` holds the integer arithmetic both the lowering and the tests mirror from LiteRT;
`packing` the packed-weights format the kernels decode.
"""
