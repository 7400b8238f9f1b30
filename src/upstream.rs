//! The HTTP upstream service on hyper-util (placeholder: being written).
