//! The rotation hook (see the rotation issue).
