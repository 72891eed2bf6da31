"""Integrations with the frameworks agents are built on, one module each, each importing its
framework only when imported itself (``pip install 'tracekit[<framework>]'``):

- ``tracekit.integrations.openai_agents``: the OpenAI Agents SDK
- ``tracekit.integrations.langchain``: LangChain v1 agents and LangGraph
- ``tracekit.integrations.pydantic_ai``: PydanticAI
- ``tracekit.integrations.mcp``: MCP client sessions
- ``tracekit.integrations.litellm``: LiteLLM

The openai and anthropic SDK clients need none of these: ``tracekit.instrument(client)``.
"""
