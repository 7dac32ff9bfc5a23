"""hgq-rtl: High Granularity Quantization in PyTorch to bit-exact, pipelined Verilog."""

__version__ = "0.1.0"
