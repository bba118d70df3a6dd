"""labctl's Kubernetes API: the custom resources' models, and the CRDs generated from them."""
