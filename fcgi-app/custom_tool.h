/* custom_tool: POST /v1/parse-custom-tool and /v1/execute-custom-tool. Runs our
 * own programs (executor/python/tool_parse.py, tool_execute.py) in a sandbox with
 * the tool's source and input as files, and turns their one JSON result into the
 * responses of DESIGN §1. Never parses, evaluates or runs the tool source here. */
#ifndef CUSTOM_TOOL_H
#define CUSTOM_TOOL_H

#include "execution.h"
#include "handlers.h"

void handle_parse_custom_tool(struct app *app, const struct request_in *in, struct response *out);
void handle_execute_custom_tool(struct app *app, const struct request_in *in, struct response *out);

/* Fills out from a finished run of our program: st and r as execution_run_kind
 * left them, execute 0 for a parse and 1 for an execution. The result channel is
 * the run's stdout, which holds exactly one JSON object when our program
 * finished: {"tool_name", "tool_input_schema_json", "tool_description"} or
 * {"error_messages": [...]} for a parse, {"tool_output_json"} for an execution.
 * Exported for the unit tests. */
void custom_tool_respond(int execute, enum ci_status st, const struct exec_result *r,
			 struct response *out);

#endif
