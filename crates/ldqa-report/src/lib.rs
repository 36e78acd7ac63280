//! Exporters: terminal text, CSV, versioned JSON, PNG/SVG plots.
