// beeai-framework's CustomTool: a Python function turned into a tool by
// POST /v1/parse-custom-tool and called through POST /v1/execute-custom-tool.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CustomTool, CustomToolCreateError, CustomToolExecuteError } from "beeai-framework/tools/custom";
import { ToolInputValidationError } from "beeai-framework/tools/base";
import { callCodeInterpreter } from "beeai-framework/tools/python/python";
import { SERVICE_URL, T } from "./env.mjs";

const MEETING = `import datetime
import typing


def plan_meeting(title: str, start: datetime.datetime, minutes: int = 30,
                 attendees: typing.Optional[typing.List[str]] = None) -> dict:
    """Plans a meeting and says when it ends.

    :param title: what the meeting is about
    :param start: when it starts (ISO 8601)
    :param minutes: how long it takes
    :param attendees: who comes
    :return: the meeting with its end
    """
    end = start + datetime.timedelta(minutes=minutes)
    return {"title": title.upper(), "end": end, "attendees": sorted(attendees or []), "weekday": start.strftime("%A")}
`;

// The error itself or any error it wraps, as FrameworkError nests them.
function chain(error) {
  return [error, ...(typeof error.traverseErrors === "function" ? error.traverseErrors() : [])];
}

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected an error, got ${JSON.stringify(value)}`),
    (error) => error,
  );
}

test("fromSourceCode: name, description and input schema from the service", T, async () => {
  const tool = await CustomTool.fromSourceCode({ url: SERVICE_URL }, MEETING);
  assert.equal(tool.name, "plan_meeting");
  assert.equal(tool.description, "Plans a meeting and says when it ends.\n\nReturns: dict -- the meeting with its end");
  const schema = await tool.getInputJsonSchema();
  assert.deepEqual(schema.required, ["title", "start"]);
  assert.deepEqual(schema.properties.start, { type: "string", format: "date-time", description: "when it starts (ISO 8601)" });
  assert.equal(schema.additionalProperties, false);
});

test("run returns the function's value as JSON", T, async () => {
  const tool = await CustomTool.fromSourceCode({ url: SERVICE_URL }, MEETING);
  const out = await tool.run({ title: "standup", start: "2024-05-06T09:45:00+02:00", minutes: 20, attendees: ["bob", "alice"] });
  assert.deepEqual(JSON.parse(out.getTextContent()), {
    title: "STANDUP",
    end: "2024-05-06T10:05:00+02:00",
    attendees: ["alice", "bob"],
    weekday: "Monday",
  });
});

test("an input that fails validation is refused before it is sent", T, async () => {
  const tool = await CustomTool.fromSourceCode({ url: SERVICE_URL }, MEETING);
  const error = await rejection(tool.run({ title: "standup", start: "2024-05-06T09:45:00Z", minutes: "half an hour" }));
  assert.ok(chain(error).some((e) => e instanceof ToolInputValidationError), error.explain?.() ?? String(error));
});

test("an input that fails the service's validation: 400 with the message in stderr", T, async () => {
  const error = await rejection(
    callCodeInterpreter({
      url: `${SERVICE_URL}/v1/execute-custom-tool`,
      body: { tool_source_code: MEETING, tool_input_json: JSON.stringify({ title: "standup", start: "not a date" }), env: {} },
    }),
  );
  assert.match(error.message, /HTTP status code 400/);
  const body = JSON.parse(error.errors[0].message);
  assert.match(body.stderr, /validation error/);
  assert.match(body.stderr, /start/);
});

test("an exception in the tool becomes a CustomToolExecuteError", T, async () => {
  const source = 'def divide(a: int, b: int) -> float:\n    """Divides a by b."""\n    return a / b\n';
  const tool = await CustomTool.fromSourceCode({ url: SERVICE_URL }, source);
  assert.equal(JSON.parse((await tool.run({ a: 7, b: 2 })).getTextContent()), 3.5);
  const error = await rejection(tool.run({ a: 1, b: 0 }));
  const cause = chain(error).find((e) => e instanceof CustomToolExecuteError);
  assert.ok(cause, error.explain?.() ?? String(error));
  assert.match(error.explain(), /ZeroDivisionError/);
});

test("source the service cannot take becomes a CustomToolCreateError", T, async () => {
  const error = await rejection(CustomTool.fromSourceCode({ url: SERVICE_URL }, "def f(*args: int) -> int:\n    return 0\n"));
  assert.ok(error instanceof CustomToolCreateError, String(error));
  assert.match(error.explain(), /\*args/);
});
