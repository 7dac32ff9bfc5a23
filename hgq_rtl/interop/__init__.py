"""Bring models from other tools into the IR and back out: HGQ2 (Keras 3) import
(:mod:`~hgq_rtl.interop.hgq2`, checked by :mod:`~hgq_rtl.interop.hgq2_check`), QONNX export
(:mod:`~hgq_rtl.interop.qonnx_export`) and QONNX import (:mod:`~hgq_rtl.interop.qonnx_import`);
the ``hgq-rtl import`` and ``export-qonnx`` commands are in :mod:`~hgq_rtl.interop.command`.

Keras, HGQ2, onnx and qonnx are imported only inside the functions that need them (the
``interop`` extra of pyproject.toml installs them), so importing this package stays cheap.
"""
