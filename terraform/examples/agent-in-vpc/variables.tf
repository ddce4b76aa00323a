variable "kubeconfig" {
  type        = string
  description = "Kubeconfig of the cluster in the VPC where the agent runs."
  default     = "~/.kube/config"
}

variable "region" {
  type        = string
  description = "AWS region of the VPC and the object-store bucket."
  default     = "eu-west-1"
}

variable "agent_name" {
  type        = string
  description = "Name of the agent."
  default     = "vpc-agent"
}

variable "control_plane_address" {
  type        = string
  description = "HOST:PORT of the control plane's gateway agent link."
  default     = "gateway.mallard.example.com:8701"
}

variable "control_plane_ca_file" {
  type        = string
  description = "File with the CA that signed the gateway's certificate."
  default     = "control-plane-ca.crt"
}

variable "gateway_cidrs" {
  type        = list(string)
  description = "Addresses of the gateway (the agent may reach nothing else outside the VPC)."
  default     = []
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the VPC's stores (RDS, ElastiCache, the S3 VPC endpoint) the agent may reach."
  default     = "10.0.0.0/16"
}

variable "iam_role_name" {
  type        = string
  description = "The agent's IRSA role, to which the module attaches the bucket policy."
  default     = null
}

variable "iam_role_arn" {
  type        = string
  description = "ARN of that role, for the ServiceAccount annotation."
  default     = null
}
