"""Xiaopu: backend for social-sharing storefronts."""
