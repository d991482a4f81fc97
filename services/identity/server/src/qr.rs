//! The enrolment QR code (R-SEC-6) as an SVG document, so that an authenticator app can scan
//! the otpauth URI instead of the secret being typed.

use qrcodegen::{QrCode, QrCodeEcc};
use std::fmt::Write as _;

/// An SVG of `text` as a QR code (medium error correction, 4-module quiet zone), or `None`
/// when the text is too long for a QR code.
pub fn svg(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let border = 4;
    let size = qr.size() + border * 2;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + border, y + border);
            }
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {size} {size}\" stroke=\"none\"><rect width=\"100%\" height=\"100%\" fill=\"#FFFFFF\"/><path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_otpauth_uri_becomes_an_svg() {
        let s = super::svg(
            "otpauth://totp/ETX%20Hub:admin?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ETX%20Hub",
        )
        .unwrap();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>") && s.contains("h1v1h-1z"));
    }
}
