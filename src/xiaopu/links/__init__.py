"""Share links: the redirect, clicks, attribution tokens, previews, QR codes and link stats."""
