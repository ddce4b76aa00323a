variable "api_url" {
  type        = string
  description = "Control-plane URL, e.g. https://mallard.example.com. Null: MALLARD_API_URL."
  default     = null
}

variable "project_name" {
  type        = string
  description = "Name of the project to create (a lowercase DNS label)."
  default     = "fraud-detection"
}

variable "project_description" {
  type        = string
  description = "Description of the project."
  default     = "Card-fraud models, built and served in our VPC."
}

variable "ci_key_name" {
  type        = string
  description = "Name of the API key CI uses to build and deploy models."
  default     = "ci"
}

variable "ci_key_expires_in_days" {
  type        = number
  description = "Lifetime of the CI key in days."
  default     = 90
}

variable "agent_name" {
  type        = string
  description = "Name of the data-plane agent the join token enrolls."
  default     = "vpc-agent"
}

variable "join_token_ttl" {
  type        = string
  description = "How long the join token stays valid, e.g. 30m or 2h."
  default     = "1h"
}
