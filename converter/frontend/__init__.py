"""The front end: from what the user gives (a builtin name, a .keras, an int8 .tflite, images) to
the int8 .tflite and its typed graph.

- `sources`: model arguments -> a float model and its calibration data -> the int8 .tflite;
- `quantize`: TensorFlow's full-integer post-training quantization;
- `tflite_reader` / `tflite_edit`: the flatbuffer through the TFLite schema bindings;
- `preprocess`: how an image becomes the model input, on the host (training, calibration);
- `reference`: LiteRT BUILTIN_REF in a child process, the golden outputs;
- `example`: the bundled example model.
"""
