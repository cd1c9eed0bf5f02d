// A chat server as a Node.js user would write it with the usual GraphQL libraries:
// graphql-js for the schema and execution, graphql-http for queries and mutations,
// graphql-ws over `ws` for subscriptions, graphql-subscriptions' in-memory PubSub,
// jsonwebtoken for the same access tokens the Python server issues. No database:
// rooms and their sequence numbers live in this process.
//
// It serves the part of the chat API the benchmark drives, with the same names and
// shapes: `roomEvents(roomId)` yielding the `RoomEvent` interface (`MessageAdded`),
// `sendMessage(input: {roomId, text, clientId})`, `createRoom(input: {name, memberIds})`,
// `me`, `room(id)`; JWT in `Authorization: JWT|Bearer <token>` over HTTP and in the
// `connection_init` payload (`authToken`) over WebSocket; members only.
//
//   PORT=4000 JWT_SECRET=... [JWT_ISSUER=chat-backend] node server.js

import http from "node:http";

import {
  GraphQLError,
  GraphQLID,
  GraphQLInputObjectType,
  GraphQLInt,
  GraphQLInterfaceType,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
} from "graphql";
import { createHandler } from "graphql-http/lib/use/http";
import { PubSub } from "graphql-subscriptions";
import { useServer } from "graphql-ws/use/ws";
import jwt from "jsonwebtoken";
import { WebSocketServer } from "ws";

const PORT = Number(process.env.PORT || 4000);
const HOST = process.env.HOST || "127.0.0.1";
const JWT_SECRET = process.env.JWT_SECRET;
const JWT_ISSUER = process.env.JWT_ISSUER || "chat-backend";
if (!JWT_SECRET) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}

// --- Identity ------------------------------------------------------------------

const globalId = (type, id) => Buffer.from(`${type}:${id}`).toString("base64");

function fromGlobalId(value, type) {
  const [kind, id] = Buffer.from(String(value), "base64").toString().split(":");
  if (kind !== type || !id) {
    throw new GraphQLError(`Not a ${type} id`, { extensions: { code: "BAD_USER_INPUT" } });
  }
  return id;
}

function userFromToken(token) {
  if (!token) return null;
  try {
    const claims = jwt.verify(token, JWT_SECRET, { algorithms: ["HS256"], issuer: JWT_ISSUER });
    if (claims.type !== "access") return null;
    return { id: String(claims.sub), username: claims.username };
  } catch {
    return null;
  }
}

function tokenFromAuthorization(header) {
  const [scheme, token] = String(header || "").split(" ");
  return scheme === "JWT" || scheme === "Bearer" ? token : null;
}

function requireUser(context) {
  if (!context.user) {
    throw new GraphQLError("Authentication required", { extensions: { code: "UNAUTHENTICATED" } });
  }
  return context.user;
}

// --- Data: rooms in memory ---------------------------------------------------------

const rooms = new Map(); // room id -> { id, name, members: Set of user ids, seq }
let nextRoomId = 1;
let nextMessageId = 1;

function memberRoom(user, roomGlobalId) {
  const room = rooms.get(fromGlobalId(roomGlobalId, "Room"));
  // A room you are not in looks the same as one that does not exist.
  if (!room || !room.members.has(user.id)) {
    throw new GraphQLError("Room not found", { extensions: { code: "NOT_FOUND" } });
  }
  return room;
}

const pubsub = new PubSub();
const roomTopic = (roomId) => `room:${roomId}`;

// --- Schema --------------------------------------------------------------------------

const nonNull = (type) => new GraphQLNonNull(type);

const UserType = new GraphQLObjectType({
  name: "User",
  fields: {
    id: { type: nonNull(GraphQLID), resolve: (user) => globalId("User", user.id) },
    username: { type: nonNull(GraphQLString) },
  },
});

const RoomType = new GraphQLObjectType({
  name: "Room",
  fields: {
    id: { type: nonNull(GraphQLID), resolve: (room) => globalId("Room", room.id) },
    name: { type: nonNull(GraphQLString) },
    memberCount: { type: nonNull(GraphQLInt), resolve: (room) => room.members.size },
  },
});

const MessageType = new GraphQLObjectType({
  name: "Message",
  fields: {
    id: { type: nonNull(GraphQLID), resolve: (message) => globalId("Message", message.id) },
    text: { type: nonNull(GraphQLString) },
    clientId: { type: GraphQLString },
    createdAt: { type: nonNull(GraphQLString) },
    sender: { type: UserType },
    room: { type: nonNull(RoomType) },
  },
});

const roomEventFields = {
  cursor: { type: nonNull(GraphQLString) },
  seq: { type: GraphQLInt },
  createdAt: { type: nonNull(GraphQLString) },
  room: { type: nonNull(RoomType) },
};

const RoomEventType = new GraphQLInterfaceType({
  name: "RoomEvent",
  fields: roomEventFields,
  resolveType: (event) => event.__typename,
});

const MessageAddedType = new GraphQLObjectType({
  name: "MessageAdded",
  interfaces: [RoomEventType],
  fields: { ...roomEventFields, message: { type: nonNull(MessageType) } },
});

const Query = new GraphQLObjectType({
  name: "Query",
  fields: {
    me: { type: UserType, resolve: (_, __, context) => context.user },
    room: {
      type: RoomType,
      args: { id: { type: nonNull(GraphQLID) } },
      resolve: (_, { id }, context) => memberRoom(requireUser(context), id),
    },
  },
});

const CreateRoomInput = new GraphQLInputObjectType({
  name: "CreateRoomInput",
  fields: {
    name: { type: nonNull(GraphQLString) },
    memberIds: { type: new GraphQLList(nonNull(GraphQLID)) },
  },
});

const SendMessageInput = new GraphQLInputObjectType({
  name: "SendMessageInput",
  fields: {
    roomId: { type: nonNull(GraphQLID) },
    text: { type: nonNull(GraphQLString) },
    clientId: { type: GraphQLString },
  },
});

const Mutation = new GraphQLObjectType({
  name: "Mutation",
  fields: {
    createRoom: {
      type: nonNull(RoomType),
      args: { input: { type: nonNull(CreateRoomInput) } },
      resolve: (_, { input }, context) => {
        const owner = requireUser(context);
        const name = input.name.trim();
        if (!name) throw new GraphQLError("A room needs a name", { extensions: { code: "BAD_USER_INPUT" } });
        const members = new Set([owner.id]);
        for (const memberId of input.memberIds || []) members.add(fromGlobalId(memberId, "User"));
        const room = { id: String(nextRoomId++), name, members, seq: 0 };
        rooms.set(room.id, room);
        return room;
      },
    },
    sendMessage: {
      type: nonNull(MessageType),
      args: { input: { type: nonNull(SendMessageInput) } },
      resolve: async (_, { input }, context) => {
        const sender = requireUser(context);
        const room = memberRoom(sender, input.roomId);
        const text = input.text.trim();
        if (!text || text.length > 4000) {
          throw new GraphQLError("Text must be 1 to 4000 characters", { extensions: { code: "BAD_USER_INPUT" } });
        }
        const createdAt = new Date().toISOString();
        const message = { id: String(nextMessageId++), text, clientId: input.clientId, createdAt, sender, room };
        room.seq += 1;
        const event = {
          __typename: "MessageAdded",
          cursor: Buffer.from(`${room.id}:${room.seq}`).toString("base64"),
          seq: room.seq,
          createdAt,
          room,
          message,
        };
        await pubsub.publish(roomTopic(room.id), { roomEvents: event });
        return message;
      },
    },
  },
});

const Subscription = new GraphQLObjectType({
  name: "Subscription",
  fields: {
    roomEvents: {
      type: nonNull(RoomEventType),
      args: { roomId: { type: nonNull(GraphQLID) } },
      subscribe: (_, { roomId }, context) => {
        const room = memberRoom(requireUser(context), roomId);
        return pubsub.asyncIterableIterator(roomTopic(room.id));
      },
    },
  },
});

const schema = new GraphQLSchema({
  query: Query,
  mutation: Mutation,
  subscription: Subscription,
  // Reached only through the RoomEvent interface, so named here.
  types: [MessageAddedType],
});

// --- Transports ------------------------------------------------------------------------

const graphqlHandler = createHandler({
  schema,
  context: (req) => ({ user: userFromToken(tokenFromAuthorization(req.headers.authorization)) }),
});

const server = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/graphql" || path === "/graphql/") {
    graphqlHandler(req, res).catch((error) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(500).end();
    });
  } else if (path === "/healthz") {
    res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
  } else {
    res.writeHead(404).end();
  }
});

const wss = new WebSocketServer({ noServer: true });
server.on("upgrade", (req, socket, head) => {
  const path = req.url.split("?")[0];
  if (path !== "/graphql" && path !== "/graphql/") {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});

useServer(
  {
    schema,
    // The socket's identity is fixed by its connection_init token; a bad one closes it (4403).
    onConnect: (ctx) => {
      const params = ctx.connectionParams || {};
      const user = userFromToken(params.authToken || tokenFromAuthorization(params.Authorization));
      if (!user) return false;
      ctx.extra.user = user;
      return true;
    },
    context: (ctx) => ({ user: ctx.extra.user }),
  },
  wss,
);

server.listen(PORT, HOST, () => console.log(`peer listening on http://${HOST}:${PORT}/graphql`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    for (const client of wss.clients) client.terminate();
    server.close(() => process.exit(0));
  });
}
