"""Importers from other frameworks into tosac graphs (``tosac.frontends.onnx``)."""
