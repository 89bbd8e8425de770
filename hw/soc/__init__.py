"""The accelerator as a system component: a Wishbone B4 front end with a register map generated
from the configuration (:mod:`hw.soc.regmap`), and the UART bridge that drives the bus from a
host. Written after amaranth-soc's conventions (not on the package index here)."""
