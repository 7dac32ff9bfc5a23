"""hgq_rtl_sim: verify generated designs against the integer reference, bit for bit.

- :mod:`hgq_rtl_sim.runner`: :func:`~hgq_rtl_sim.runner.verify` builds a design with cocotb's
  runner (Verilator or Icarus), runs the bench and returns a
  :class:`~hgq_rtl_sim.runner.VerifyResult`.
- :mod:`hgq_rtl_sim.fast`: :func:`~hgq_rtl_sim.fast.verify_fast` streams millions of vectors
  through a Verilator C++ harness (``fast_harness.cpp``) and scores them in numpy; same result.
- :mod:`hgq_rtl_sim.bench`: the cocotb test module that runs inside the simulator.
- :mod:`hgq_rtl_sim.bus`: packing element matrices into bus words per the manifest, and back.
- :mod:`hgq_rtl_sim.scoreboard`: comparing outputs and their timing with the reference.
- :mod:`hgq_rtl_sim.config`: the settings file handed from the runner to the bench.
"""
