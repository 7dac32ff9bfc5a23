# Vivado timing constraints for an out-of-context run (read_xdc vivado.xdc).
# Rendered by rtl_gen/synth.py; placeholders (see constraints/README.md):
# clock, clock_ns, half_period_ns, input_delay_ns, output_delay_ns.
create_clock -name {clock} -period {clock_ns} -waveform {{0.000 {half_period_ns}}} [get_ports {clock}]
# Out of context the clock arrives from a global buffer outside the design.
set_property HD.CLK_SRC BUFGCE_X0Y0 [get_ports {clock}]
# Ports connect to registers of the surrounding design: budget part of the period to them.
set_input_delay -clock [get_clocks {clock}] {input_delay_ns} [get_ports -filter {{DIRECTION == IN && NAME != "{clock}"}}]
set_output_delay -clock [get_clocks {clock}] {output_delay_ns} [get_ports -filter {{DIRECTION == OUT}}]
