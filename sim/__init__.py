"""The folder ``sim/`` installs as the import package ``hgq_rtl_sim`` (pyproject's package-dir).

It verifies generated designs against the integer reference, bit for bit, with two engines:

- :mod:`hgq_rtl_sim.runner`: :func:`~hgq_rtl_sim.runner.verify` builds a design with cocotb's
  runner (Verilator or Icarus), runs the bench and returns a
  :class:`~hgq_rtl_sim.result.VerifyResult`.
- :mod:`hgq_rtl_sim.fast`: :func:`~hgq_rtl_sim.fast.verify_fast` streams millions of vectors
  through a Verilator C++ harness (``fast_harness.cpp``) and scores them in numpy; same result.
- :mod:`hgq_rtl_sim.fast_build`: building that harness
  (:func:`~hgq_rtl_sim.fast_build.build_harness`), Verilator's run-time library cached.
- :mod:`hgq_rtl_sim.result`: :class:`~hgq_rtl_sim.result.VerifyResult` and
  :class:`~hgq_rtl_sim.result.SimulatorNotFoundError`, shared by both engines.
- :mod:`hgq_rtl_sim.manifest`: reading and checking a design's ``manifest.json``
  (:func:`~hgq_rtl_sim.manifest.load_manifest`).
- :mod:`hgq_rtl_sim.interface`: the kinds of design a manifest describes (parallel with one or
  several inputs, or stream) and their ports; :mod:`hgq_rtl_sim.stream`: a stream port's beats.
- :mod:`hgq_rtl_sim.workspace`: what both engines run in: the work folder (and killing its
  processes on Ctrl-C), the tools' environment, progress lines, log tails.
- :mod:`hgq_rtl_sim.bench`: the cocotb test module that runs inside the simulator; it drives
  stream designs with :mod:`hgq_rtl_sim.stream_bench`; both use :mod:`hgq_rtl_sim.drive`.
- :mod:`hgq_rtl_sim.bus`: packing element matrices into bus words per the manifest, and back.
- :mod:`hgq_rtl_sim.scoreboard`: comparing outputs and their timing with the reference;
  :mod:`hgq_rtl_sim.stream_score` for stream designs; :mod:`hgq_rtl_sim.fast_score`: the fast
  harness's packing and scoring per kind of design.
- :mod:`hgq_rtl_sim.config`: the settings file handed from the runner to the bench.
"""
