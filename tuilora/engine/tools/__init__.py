"""The LoRA tools that compute with torch: extract, merge (into a model, or LoRAs into one)
and resize. ``tuilora tools inspect`` needs none of this (``tuilora.lorafile``)."""
