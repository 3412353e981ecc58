import { useAccess } from "./access";
import { TokenPrompt } from "./AccessPanel";
import { useRoute } from "./route";
import { SplitPage } from "./SplitPage";
import { StreamPage } from "./StreamPage";

export function App() {
  const route = useRoute();
  const { tokenRequired } = useAccess();
  return (
    <>
      {route.kind === "split" ? <SplitPage route={route} /> : <StreamPage route={route} />}
      {tokenRequired && <TokenPrompt />}
    </>
  );
}
