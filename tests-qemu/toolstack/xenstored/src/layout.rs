//! libxl's xenstore layout (filled in by the toolstack step).
