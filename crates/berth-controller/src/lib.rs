//! Berth's controller. Today: [`source`], which turns an Application's
//! sources into the desired objects, as the reconcile loop and
//! `berth render -f` both need.

pub mod source;
