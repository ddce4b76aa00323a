terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    mallard = {
      source  = "mallard/mallard"
      version = "~> 0.1.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17.0"
    }
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90.0"
    }
  }
}
