# Vivado non-project batch script: out-of-context synthesis, place and route, reports.
# Rendered by rtl_gen/synth.py into the synthesis output folder; run it there with
#   vivado -mode batch -nojournal -log vivado.log -source vivado.tcl
# Placeholders (see constraints/README.md): part, top, verilog.
read_verilog {verilog}
read_xdc vivado.xdc
# -mode out_of_context: no I/O buffers on the ports; the design is a block of a larger one.
synth_design -top {top} -part {part} -mode out_of_context -verilog_define HGQ_RTL_VENDOR_CELLS
opt_design
place_design
phys_opt_design
route_design
# Fixed report names: rtl_gen.synth.read_vivado_reports parses them.
report_utilization -file vivado_utilization.rpt
report_utilization -hierarchical -file vivado_utilization_hier.rpt
report_timing_summary -max_paths 10 -file vivado_timing_summary.rpt
write_checkpoint -force {top}_routed.dcp
