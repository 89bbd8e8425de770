"""The accelerator on a board: the UART link protocol (:mod:`hw.board.protocol`) and the host
driver (:mod:`hw.board.driver`) that loads a model's images, runs inputs and reads counters over
it; the board tops and builds live beside them."""
