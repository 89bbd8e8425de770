"""Pure software (no Amaranth): Deep Compression (:mod:`sw.compression`), the EIE contract
(:mod:`sw.eie`) and the records both share (quantized layer, relative-index encoder, errors,
atomic writes)."""
