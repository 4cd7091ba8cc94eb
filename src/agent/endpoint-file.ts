// The endpoint spool's file names, shared by the plugin (writer) and the agent (reader). Kept in a
// file of its own so the plugin executable does not bundle the agent.
export const endpointFileName = (containerId: string, ifname: string): string => `${containerId}_${ifname}.json`;
