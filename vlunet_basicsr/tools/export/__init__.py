"""basicsr export (`onnx_export`) and the exported graphs' runtimes (`onnx_runtime`, `openvino_runtime`)."""
