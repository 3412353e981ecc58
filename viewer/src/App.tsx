import { useAccess } from "./access";
import { TokenPrompt } from "./AccessPanel";
import { useRoute } from "./route";
import { SplitPage } from "./SplitPage";
import { StreamPage } from "./StreamPage";
import { StreamsPage } from "./StreamsPage";

export function App() {
  const route = useRoute();
  const { tokenRequired } = useAccess();
  return (
    <>
      {route.kind === "split" ? <SplitPage route={route} /> : route.kind === "streams" ? <StreamsPage route={route} /> : <StreamPage route={route} />}
      {tokenRequired && <TokenPrompt />}
    </>
  );
}
