terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    mallard = {
      source  = "mallard/mallard"
      version = "~> 0.1.0"
    }
  }
}
