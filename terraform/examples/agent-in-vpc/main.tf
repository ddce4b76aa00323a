# A data-plane agent in an EKS cluster of the customer's VPC, with an S3 bucket for its object
# store. MALLARD_API_URL and MALLARD_API_KEY (an admin key) configure the Mallard provider.

provider "mallard" {}

provider "kubernetes" {
  config_path = var.kubeconfig
}

provider "helm" {
  kubernetes {
    config_path = var.kubeconfig
  }
}

provider "aws" {
  region = var.region
}

module "agent" {
  source = "../../modules/data-plane-agent"

  name                  = var.agent_name
  namespace             = "mallard"
  control_plane_address = var.control_plane_address
  control_plane_ca_pem  = file(var.control_plane_ca_file)
  gateway_cidrs         = var.gateway_cidrs
  stores = [{
    cidr  = var.vpc_cidr
    ports = [443, 5432, 6379]
  }]

  create_bucket               = true
  iam_role_name               = var.iam_role_name
  service_account_annotations = var.iam_role_arn == null ? {} : { "eks.amazonaws.com/role-arn" = var.iam_role_arn }
}

output "agent_id" {
  description = "The enrolled agent (known after the refresh that follows enrollment)."
  value       = module.agent.agent_id
}

output "bucket_name" {
  description = "The object store's bucket."
  value       = module.agent.bucket_name
}

output "data_plane_url" {
  description = "In-cluster URL of the data-plane API."
  value       = module.agent.data_plane_url
}
