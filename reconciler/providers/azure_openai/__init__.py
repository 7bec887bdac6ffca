"""Azure OpenAI in Microsoft Foundry: a host of the OpenAI-shaped driver."""
